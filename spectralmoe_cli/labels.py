"""The class value that means "no class", shared by labels, losses, metrics and class maps.

Classes are uint8 numbers 0..K-1 (K <= 255), so the largest uint8 is free to mean "no class".
"""

IGNORE_INDEX = 255
"""A label pixel with this value is neither trained on nor scored: it is unlabelled, or its input
is invalid. The losses' and the metrics' ignore index."""

CLASS_MAP_NODATA = IGNORE_INDEX
"""A predicted class map's nodata: a pixel whose input is invalid gets no class. It is the ignore
value on purpose: scored against a label it is no class's prediction, and a predicted map can be
used as a label as it is."""
