"""The blocking shell: waits with poll and threads."""
