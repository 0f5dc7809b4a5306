"""The Hub: rooms and fan-out, in one process and across processes over Redis."""
