DROP TRIGGER users_search ON users;
DROP TRIGGER sitters_search ON sitters;
DROP TRIGGER services_search ON services;
DROP FUNCTION nanny_search_changed();
DROP FUNCTION nanny_refresh_search(integer);
DROP VIEW service_search_source;
DROP TABLE service_search;
DROP TABLE search_zones;
