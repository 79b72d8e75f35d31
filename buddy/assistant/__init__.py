"""Brainstorm mode: a conversation that fills a trade idea slot by slot and evaluates it.

``draft`` holds the idea (``TradeIdeaDraft``), ``parse`` reads plain text into its slots and
asks for what is missing or contradictory; the router, the optional LLM and the session
engine build on them.
"""
