//  es_meta - (being written)
