"""Domain actors: session store, login broker, TIP refresher, credential vault, approval broker.

Each actor owns its state and a bounded mailbox; others reach it only through its ``Address``.
"""
