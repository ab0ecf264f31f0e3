"""The face pipeline both programs run (detect, align, embed, match), pure: models come in as bytes."""
