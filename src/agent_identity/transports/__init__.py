"""Transports: the Unix-socket HTTP server, the callback ASGI app and the control socket.

Transports talk to actors only through the addresses they are given, never by importing them.
"""
