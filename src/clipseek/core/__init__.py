"""Floor 1: images, preprocessing, prompts and scores. Pure functions over pixels, strings and arrays."""
