"""Hand models in MANO's layout (MANO, OpenHand) behind one interface."""
