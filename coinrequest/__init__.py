"""coinrequest: the seed demo as a small library — fetch BTC prices, process them, compose and send an e-mail.

The functions here are plain library code; `coinrequest.tasks` registers them as alloysync tasks.
"""
