"""Floor 2: images, preprocessing, prompts and scores. Pure functions over pixels, strings and arrays."""
