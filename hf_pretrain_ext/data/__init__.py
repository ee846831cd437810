"""Data: reading text files or datasets, training tokenizers, tokenizing and grouping into examples."""
