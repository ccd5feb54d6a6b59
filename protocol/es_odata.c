//  es_odata - (being written)
