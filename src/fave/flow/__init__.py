"""Flow matching pieces that know nothing about recommendation.

Time convention (stated once): t = 0 is the prior x_0, t = 1 is the target x_1, as in the
paper; the path is linear, ``x_t = (1 - t) x_0 + t x_1`` with velocity ``v = x_1 - x_0``.
"""
