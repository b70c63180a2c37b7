"""Figure builders: pure functions, arrays in, a plotly Figure out (one builder per figure).

They never compute quantization themselves (explorer.analysis and friends do) and never import streamlit.
"""
