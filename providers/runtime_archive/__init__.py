"""RuntimeArchive: the vendor's runtime archive, uploaded in chunks and extracted into Runtime."""
