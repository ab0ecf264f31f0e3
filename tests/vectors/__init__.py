"""Test vectors: data files made by generators that live beside them."""
