"""Domain types, at the bottom: the model, its errors, number normalization, input checks, page tokens."""
