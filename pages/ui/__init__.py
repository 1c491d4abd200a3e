"""What the pages share, not pages: the shell and routing, resources, faults, the sidebar, sign-in,
the live view, links, and the two components (the Draw canvas, the confusion matrix)."""
