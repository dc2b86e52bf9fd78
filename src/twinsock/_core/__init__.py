"""The sans-I/O core: every decision the blocking and async sockets share.

Nothing in this package touches a socket, a selector or an event loop.  The
shells (``twinsock.net`` and ``twinsock.asyncnet``) feed it received bytes and
ask it what to do; they differ only in how they wait.
"""
