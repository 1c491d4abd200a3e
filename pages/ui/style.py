"""One stylesheet for every page: what the theme cannot say (readable captions, reduced motion)."""

from __future__ import annotations

import streamlit as st

# Captions are the theme's text colour faded to about 60%, which is 3.8:1 on white: below the 4.5:1
# that WCAG 2.1 AA asks of small text. Faded less, from the theme's own text colour, they keep
# their quieter look in the light and the dark theme and pass (about 6.5:1 on white).
# Focus is always visible, in the text colour of the theme in use.
# A disabled widget keeps a readable label (the control itself shows that it is off). Slider values
# and the chosen option of a segmented control are written in the text colour, not the theme's
# blue: no one blue reads 4.5:1 both as text on the dark background and under a primary button's
# white label, and the buttons keep the blue. The chosen option is also bold, not shown by colour
# alone.
# Learners who ask their system for less motion get no transitions or animations.
PAGE_CSS = """<style>
[data-testid="stCaptionContainer"] { color: inherit; opacity: 0.82; }
[data-testid="stWidgetLabel"][disabled], [data-testid="stWidgetLabel"][disabled] p { color: inherit; }
[data-testid="stSliderThumbValue"], [data-testid="stSliderThumbValue"] p,
[data-variant="segmented_control"], [data-variant="segmented_control"] p,
[data-variant="pills"], [data-variant="pills"] p { color: inherit !important; }
[data-variant="segmented_control"][data-selected="true"] p,
[data-variant="pills"][data-selected="true"] p { font-weight: 600; }
:focus-visible { outline: 3px solid currentColor !important; outline-offset: 2px; }
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important;
                           scroll-behavior: auto !important; }
}
</style>"""


def page_styles() -> None:
    """Draw the stylesheet once per script run (app.py's shell calls it for every page)."""
    st.html(PAGE_CSS)
