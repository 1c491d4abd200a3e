"""The lessons wing: the attempt engine and the lessons themselves."""
