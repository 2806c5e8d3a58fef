"""Analysis of stored records: statistics, tables, figures."""
