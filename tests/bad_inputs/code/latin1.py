# Schöne Grüße, saved as Latin-1 without a coding line
name = 'café'
