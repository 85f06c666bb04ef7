"""Media code the daemon and the peer share: samples and levels, the built-in face, JPEG."""
