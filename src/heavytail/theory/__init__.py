"""Theory: the weighted quadratic (NeurIPS Fig 6) and gradient flow vs sign flow per class (v2 theorem)."""
