"""Call screening: is this customer number forbidden for this enterprise and direction?"""
