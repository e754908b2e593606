print("hcore")
