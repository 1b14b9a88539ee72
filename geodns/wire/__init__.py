"""Wire format: parse just enough of a query, and build the parts of a reply that vary."""
