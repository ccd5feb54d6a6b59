//  es_record - (being written)
