"""Delivering chunks: references, repeats and twins, the POST, the answer."""
