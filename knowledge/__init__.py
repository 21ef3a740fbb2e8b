"""Knowledge: FAQ entries, validation, published versions, retrieval and the answer decision."""
