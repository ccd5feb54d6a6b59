//  es_store - (being written)
