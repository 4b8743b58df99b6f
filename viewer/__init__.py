"""InterHand Studio, the Qt desktop application; it only presents what core_model computes."""
