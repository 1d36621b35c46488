"""The input: Singer lines and BATCH files from stdin, and the signals that stop it."""
