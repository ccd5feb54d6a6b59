//  es_key - (being written)
