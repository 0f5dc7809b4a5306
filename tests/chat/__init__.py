"""The chat application, end to end: real servers, real clients, a real browser."""
