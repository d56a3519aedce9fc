"""Business rules, free of Pyramid: each module serves one area of the API."""
