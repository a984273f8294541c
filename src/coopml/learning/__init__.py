"""Coalition utilities: the value of a coalition of parties is the score of a model trained on their pooled data."""
