"""The tracking HTTP API (flask-smorest): parse → service function → render."""
