"""The server: sockets, workers, and the function from query bytes to reply bytes."""
