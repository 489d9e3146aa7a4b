import os

value = 1
print value
