"""Trivial translation baselines any reviewer asks for (extra rows of Table 1).

A method that loses to these has learned nothing: the phone texture itself, and the phone
texture with a global colour match and its holes filled from the mean studio texture.
"""
