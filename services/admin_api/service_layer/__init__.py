"""The admin API's use cases: one function each, called by exactly one route.

A function takes what was asked (a query or command object) and what it needs (the read
model's store, the command bus, the clock, the admin), owns its transaction, and answers in
the domain's terms; refusals are `domain.errors`. Nothing here knows HTTP.
"""
