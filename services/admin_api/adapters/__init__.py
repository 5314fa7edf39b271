"""The admin API's database queries and Kafka publishing."""
