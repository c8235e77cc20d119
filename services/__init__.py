"""The application core of finsync: everything but widgets lives here."""
