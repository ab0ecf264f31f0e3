"""RB1 ticket test vectors (dgc-testdata style); `make_vectors` writes them."""
