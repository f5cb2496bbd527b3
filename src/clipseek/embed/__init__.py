"""Floor 4: files -> vectors at scale: read/decode/encode stages, local and Ray runners, shards, cache."""
