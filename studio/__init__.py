"""Tuning Studio front ends: the `studio` CLI and the Streamlit app, thin layers over the libraries."""
