"""Result records: typed cells and run records, provenance, and the store on disk."""
