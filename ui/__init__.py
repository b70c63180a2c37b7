"""The app's Streamlit layer: URL state, the shared sidebar, cached library calls, common page furniture.

Pages import from here and from `explorer`; `explorer` never imports from here.
"""
