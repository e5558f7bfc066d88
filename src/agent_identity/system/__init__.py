"""The composition root: builds the supervision tree, wires addresses, handles signals."""
