DROP TABLE destinations;
