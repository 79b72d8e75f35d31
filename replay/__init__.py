"""Point-in-time replay of past intents and trades, outcome labelling and calibration."""
