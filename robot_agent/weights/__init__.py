"""Model files obtained at set-up (fetched, built) for the face pipeline."""
