"""Pure logic: the config language, types, mapping, hashing, lifecycle. No I/O."""
